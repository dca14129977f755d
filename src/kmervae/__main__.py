from kmervae._program import run

run()
