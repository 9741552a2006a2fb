"""The stage engine: `table.step(progress, event, ...)` applies one event to a run's progress.

`table` holds the transition table and `step`; `rows` what each row does, with `advance`, `gates`,
`holds`, `traffic`, `hypercare` and `end` for the behaviour the rows share; `progress` the run's
state, `events` what may happen to it, `effects` what the caller carries out, `errors` the refusals.
`doc` renders the table as the markdown of docs/engine.md. Import from the module that defines a
name: this package re-exports nothing.
"""
