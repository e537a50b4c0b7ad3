"""Storyline algebra, pure and below the database: a story's tree and its content hash
(``tree``), three-way merges (``merge``) and the ``stories:`` section of a production file
(``spec``). Nothing here loads the ORM; ``db/story.py`` stores and versions what this computes.
"""
