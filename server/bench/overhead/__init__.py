"""The gateway overhead benchmark (`mistral-local bench overhead`): its runner, the fronts it measures, the targets
it checks."""
