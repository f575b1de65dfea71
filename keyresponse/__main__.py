from keyresponse.cli import app

app()
