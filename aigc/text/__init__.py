"""Text: tokenisers for the character-level language models (the base of the text mode)."""
from aigc.text.tokenizer import CharTokenizer, UNK

__all__ = ["CharTokenizer", "UNK"]
