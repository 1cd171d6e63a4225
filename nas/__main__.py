from nas.cli import command

command()
