"""Commands that do more than call one stage and one view: each is one small module."""
