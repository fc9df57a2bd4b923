"""What the tests share: a config builder, the dev-server and log folder fixtures, the agent
as a child process (smoke tests: signals, exit codes, SIGKILL) and in the test's own event
loop (everything else), and conditions to wait on instead of fixed sleeps.

Imported as `tests.support.<module>` (pytest puts the repository root on `sys.path`, see
`pythonpath` in pyproject.toml): no test folder reaches into another one's files.
"""
