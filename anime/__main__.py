from anime.cli import app

# Guarded: a process that multiprocessing spawns imports the main module again (the reel's
# encoder ahead, tasks/reel/ahead.py), and must not run the command a second time.
if __name__ == "__main__":
    app()
