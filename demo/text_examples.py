"""What the Text tab offers a newcomer: example prompts per training set, poem titles, sampling
presets, and one line of help per knob."""
from __future__ import annotations

# the reference article's own example starts with this sentence (data/text/article_example_zh.txt)
ARTICLE_FIRST_SENTENCE = "月光洒在窗前，寂静的夜晚里，一只猫悄悄走过。"

# training set (a model's config "dataset") -> prompts that read like that set
PROMPTS = {
    "shakespeare": ["ROMEO.\n", "JULIET.\nO Romeo, Romeo, wherefore art thou", "HAMLET.\nTo be, or not to be,",
                    "KING LEAR.\nBlow, winds,"],
    "tang": ["【五言绝句】春晓\n", "【七言绝句】山行\n", "床前明月光，"],
    "zh-modern": [ARTICLE_FIRST_SENTENCE, "今天早上，", "这家店的菜"],
}

POEM_TITLES = [("春望", "五言绝句"), ("静夜思", "五言绝句"), ("山中", "七言绝句"), ("登高", "七言律诗"),
               ("送友人", "五言律诗")]

# name -> (temperature, top-k, top-p, repetition penalty)
PRESETS = {
    "faithful": (0.5, 20, 0.9, 1.0),
    "balanced": (0.8, 0, 0.95, 1.0),
    "wild": (1.2, 0, 1.0, 1.0),
}
DEFAULT_PRESET = "balanced"

HELP = {
    "temperature": "How adventurous each pick is: low keeps to the likeliest characters, 1 follows the "
                   "model as trained, high invents more (and errs more); 0 always takes the likeliest.",
    "top_k": "Pick only among the k likeliest next characters; 0 lets every character be picked.",
    "top_p": "Pick only among the likeliest characters that together make up this share of the "
             "probability (nucleus sampling); 1 turns it off.",
    "repetition_penalty": "Above 1, characters already in the text become less likely, which breaks "
                          "loops; a character model needs little (1.0-1.2).",
    "preset": "Sets temperature, top-k, top-p and repetition penalty together.",
    "prior_temperature": "How freely the decoder picks the characters of each line drawn from the "
                         "prior: 0 gives the likeliest line for each latent point, 1 the model's "
                         "own spread, higher more surprising lines.",
}


def prompt_examples(datasets: dict[str, str | None]) -> list[list[str]]:
    """[model, prompt] rows for the models listed (name -> training set), the listed order kept;
    a modern Chinese model (dataset "zh-modern") gets the article's first sentence first."""
    return [[name, p] for name, ds in datasets.items() for p in PROMPTS.get(ds or "", [])]


def preset_values(name) -> tuple:
    """A preset's (temperature, top-k, top-p, repetition penalty); ValueError for an unknown one."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {str(name)[:40]!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
