from anime.cli import app

app()
