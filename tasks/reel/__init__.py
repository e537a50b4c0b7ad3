"""The episode as one film: each cut's best stored footage in cut order, retimed to the
episode's fps, encoded as H.264 MP4 with a contact sheet beside it."""
