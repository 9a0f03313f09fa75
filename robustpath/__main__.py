from robustpath.cli import app

app(prog_name="robustpath")
