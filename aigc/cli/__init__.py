"""The command line: `aigc {list,sample,train,finetune,eval,...}` (each with --help)."""


def main(argv: list[str] | None = None) -> int:
    from aigc.cli.commands import main as run

    return run(argv)
