from robustpath.cli import run

run()
