from inject_rl.cli import run

run()
