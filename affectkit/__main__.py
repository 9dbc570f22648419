from affectkit.cli import main

main(prog_name="affectkit")
