"""The built-in emulator of the cloud APIs: `app.create_app` assembles one emulated API per
registered provider (`wedata`, `dms`), `faults` makes them misbehave, `server` serves them.

Nothing is imported here, so that the CLI can read the fault settings (`faults`) without
loading the emulated APIs."""
