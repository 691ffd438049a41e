"""The ``neuroalign`` command: list, run and build the book's chapters."""

from __future__ import annotations

import argparse
import logging
import sys

from . import chapters as ch


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neuroalign", description=__doc__)
    p.add_argument("--root", help="the book's folder (default: found from the current folder)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="chapters with their parameters, types and defaults")

    run = sub.add_parser("run", help="execute one chapter (or all) with papermill")
    run.add_argument("chapter", help="chapter name, or 'all'")
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override a parameter (value parsed as YAML); repeatable",
    )
    run.add_argument("-f", "--file", help="YAML file of parameters (or chapter name -> parameters)")
    run.add_argument("--output-dir", help="folder for executed notebooks (default _build/stage/notebooks)")
    run.add_argument("--force", action="store_true", help="re-run even when nothing changed")

    build = sub.add_parser("build", help="run every chapter with defaults, then build the book")
    build.add_argument("--force", action="store_true", help="re-run chapters even when nothing changed")
    sub.add_parser("sync", help="rewrite the chapters' Colab cell and the README badges from _config.yml")
    return p


def _collect_parameters(args, names: list[str], all_names: list[str]) -> dict[str, dict]:
    """Per-chapter overrides from -f and -p (-p wins), validated against each chapter.

    A file whose values are all mappings maps chapter names to parameters; any other file holds the
    parameters of the one chapter being run.
    """
    from_file = ch.read_parameter_file(args.file) if args.file else {}
    per_chapter = bool(from_file) and all(isinstance(v, dict) for v in from_file.values())
    if per_chapter:
        unknown = sorted(set(from_file) - set(all_names))
        if unknown:
            raise ValueError(
                f"Parameter file '{args.file}' names no chapter {', '.join(map(repr, unknown))}; "
                f"chapters are: {', '.join(all_names)}."
            )
    if from_file and not per_chapter and len(names) > 1:
        raise ValueError(
            f"With 'run all', the parameter file '{args.file}' must map chapter names to parameters "
            f"(chapters are: {', '.join(all_names)})."
        )
    result = {}
    for name in names:
        params = dict(from_file.get(name, {}) if per_chapter and from_file else from_file)
        params.update(dict(args.parameter))
        result[name] = params
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        root = ch.find_root(args.root)
        if args.command == "list":
            for chapter in ch.list_chapters(root):
                print(f"{chapter.name}  ({chapter.path.relative_to(root)}): {chapter.title}")
                for prm in chapter.parameters.values():
                    hint = f"  # {prm.help}" if prm.help else ""
                    print(f"    {prm.name}: {prm.type_name} = {prm.default!r}{hint}")
            return 0
        if args.command == "run":
            all_names = [c.name for c in ch.list_chapters(root)]
            names = all_names if args.chapter == "all" else [args.chapter]
            chapters = [ch.get_chapter(n, root) for n in names]
            params = _collect_parameters(args, names, all_names)
            for chapter in chapters:  # all input is checked before the first chapter runs
                if args.chapter == "all" and args.parameter:
                    # -p with 'all' applies to the chapters that have that parameter
                    params[chapter.name] = {k: v for k, v in params[chapter.name].items() if k in chapter.parameters}
                ch.resolve_parameters(chapter, params[chapter.name])
            for i, chapter in enumerate(chapters, 1):
                print(f"[{i}/{len(chapters)}] {chapter.name}", flush=True)
                out = ch.run_chapter(
                    chapter, params[chapter.name], root=root, output_dir=args.output_dir, force=args.force
                )
                print(f"    -> {out}")
            return 0
        if args.command == "build":
            index = ch.build_book(root=root, force=args.force)
            print(f"Book built: {index}")
            return 0
        if args.command == "sync":
            from . import launch

            changed = launch.sync(root, ch.list_chapters(root))
            print("\n".join(f"rewrote {path.relative_to(root)}" for path in changed) or "nothing to change")
            return 0
    except ch.USER_ERRORS as err:
        print(f"neuroalign: error: {err}", file=sys.stderr)
        return 2 if not isinstance(err, ch.ChapterError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
