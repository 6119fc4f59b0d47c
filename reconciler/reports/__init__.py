"""What a command found, as its views receive it: immutable data that `commands/` builds and
`views/` renders, so that neither imports the other. One module per command, as in `commands/`
and `views/`: a command loads only its own (a `plan` of a few files is mostly start-up)."""
