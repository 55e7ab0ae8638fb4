from varreinterp.cli import run

raise SystemExit(run())
