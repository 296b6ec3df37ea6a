"""Command line: parses arguments and calls the code that does the work. Nothing else.

Exit codes: 0 success, 1 the command ran and found failures (failed rule tests, a failed
tick), 2 invalid configuration, rules or arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from veilleur import __version__
from veilleur.validation import ConfigError

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="veilleur",
        description="The night watchman of an AWS estate: CloudTrail and CloudWatch in, "
        "SNS and EventBridge alerts out.",
    )
    p.add_argument("--version", action="version", version=f"veilleur {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-c", "--config", type=Path, help="config file (YAML)")

    sp = sub.add_parser("run", help="run the daemon (polls, evaluates, alerts) until SIGTERM")
    with_config(sp)

    sp = sub.add_parser("once", help="one tick of every source and one outbox drain, then exit")
    with_config(sp)

    sp = sub.add_parser("dead-letters", help="list notifications given up on (from the store)")
    sp.add_argument("--limit", type=int, default=50)
    sp.add_argument(
        "--requeue",
        nargs="*",
        metavar="NOTIFICATION_ID",
        help="send them again (all, or the ids given), with the same notification ids",
    )
    sp.add_argument("--format", choices=["table", "json"], default="table")
    with_config(sp)

    sp = sub.add_parser("alarms", help="current state of every metric and threshold rule")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    with_config(sp)

    sub.add_parser("demo", help="play the reference story against local emulators (no AWS)")

    sp = sub.add_parser("check", help="validate config and rules, print a summary")
    with_config(sp)

    sp = sub.add_parser("test", help="run the rules' own test cases")
    sp.add_argument("files", nargs="*", help="rule files or builtin:NAME (default: from config)")
    sp.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    with_config(sp)

    sp = sub.add_parser("replay", help="evaluate CloudTrail log files offline (a backtest)")
    sp.add_argument(
        "files",
        nargs="+",
        help="S3 log files (.json/.json.gz), JSON lines, "
        "lookup-events output, or directories of them",
    )
    sp.add_argument("--rules", help="comma-separated rule sources (default: from config)")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    with_config(sp)
    return p


def _rule_sources(args: argparse.Namespace) -> list[str] | None:
    files = getattr(args, "files", None) if args.command == "test" else None
    if files:
        return list(files)
    if getattr(args, "rules", None):
        return [s.strip() for s in args.rules.split(",") if s.strip()]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        for line in exc.messages:
            print(f"error: {line}", file=sys.stderr)
        print(f"{len(exc.messages)} error(s); nothing started.", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `veilleur replay ... | head`: the reader has gone, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    from veilleur import report
    from veilleur.config import load_config
    from veilleur.rules.loader import RuleSet, load_rule_set

    out = sys.stdout
    if args.command == "run":
        from veilleur.daemon import run_daemon

        return run_daemon(args.config)
    if args.command == "once":
        from veilleur.daemon import run_once

        return run_once(args.config)
    if args.command == "dead-letters":
        return _dead_letters(args)
    if args.command == "alarms":
        return _alarms(args)
    if args.command == "demo":
        from veilleur.demo.runner import run_demo

        return run_demo()
    if args.command == "check":
        report.config_summary(load_config(args.config), out)
        return EXIT_OK

    sources = _rule_sources(args)
    if sources is not None:
        found = load_rule_set(sources, base_dir=None)
    else:
        cfg = load_config(args.config)
        found = RuleSet(cfg.rules, cfg.metric_rules)
    rules = list(found.events)

    if args.command == "test":
        from veilleur.rules.metric_spec import run_metric_tests
        from veilleur.rules.testing import CaseResult, run_tests

        results = run_tests(rules) + [
            CaseResult(m.id, name, ok, detail)
            for m in found.metrics
            for name, ok, detail in run_metric_tests(m)
        ]
        report.test_report(results, out, args.verbose)
        if not results:
            print("no test cases found", file=sys.stderr)
            return EXIT_FAIL
        return EXIT_OK if all(r.passed for r in results) else EXIT_FAIL

    if args.command == "replay":
        from veilleur.replay import replay

        result = replay(args.files, rules)
        summary = result.summary(rules)
        for problem in result.problems:
            print(f"invalid: {problem}", file=sys.stderr)
        if args.format == "json":
            for a in result.alerts:
                report.json_line(report.alert_line(a), out)
            report.json_line({"summary": summary}, out)
        else:
            report.alerts_table(result.alerts, out)
            report.summary_table(summary, out)
        return EXIT_OK
    raise AssertionError(args.command)  # pragma: no cover


def _alarms(args: argparse.Namespace) -> int:
    from veilleur import report
    from veilleur.alarm_status import alarm_rows
    from veilleur.build import state_path
    from veilleur.config import load_config
    from veilleur.service import ENGINE_KEY, utcnow
    from veilleur.store.sqlite import SqliteStore

    cfg = load_config(args.config)
    path = state_path(cfg)
    records, engine_state = [], None
    if path.exists():
        with SqliteStore.open(path, readonly=True) as store:
            records = store.alarm_states()
            engine_state = store.engine_state(ENGINE_KEY)
    rows = alarm_rows(cfg.metric_rules, cfg.rules, records, engine_state, utcnow())
    report.alarms(rows, sys.stdout, args.format == "json")
    return EXIT_OK


def _dead_letters(args: argparse.Namespace) -> int:
    from veilleur import report
    from veilleur.build import state_path
    from veilleur.config import load_config
    from veilleur.store.sqlite import SqliteStore

    path = state_path(load_config(args.config))
    if not path.exists():
        print(f"no state file at {path}: nothing dead-lettered yet", file=sys.stderr)
        return EXIT_OK
    if args.requeue is not None:
        from veilleur.service import utcnow

        with SqliteStore.open(path) as store:
            n = store.requeue_dead(utcnow(), args.requeue)
        print(f"{n} dead letter(s) queued again; the running daemon delivers them next drain")
        return EXIT_OK
    with SqliteStore.open(path, readonly=True) as store:
        rows = store.dead_letters(args.limit)
    report.dead_letters(rows, sys.stdout, args.format == "json")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
