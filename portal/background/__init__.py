"""Background jobs that always finish.

Bottom first: `lease` (the one run that may work on a job, renewed per
batch), `kinds` (what each kind of job does, registered by its feature),
`runs` (a job's life: queue, perform, end, resume, cancel), `watchdog` (the
worker's look-out for jobs whose worker vanished) and `views` (the admins'
jobs page). Features import this package; it imports none of them.
"""
