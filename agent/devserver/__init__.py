"""`polaris-agent dev-server`: a local, faithful stand-in for the Polaris endpoints the agent
uses (Events, Connections, Jobs, SQL query), with switchable faults for tests."""

from agent.devserver.faults import Faults
from agent.devserver.server import DevServer, RequestRecord, running_dev_server

__all__ = ["DevServer", "Faults", "RequestRecord", "running_dev_server"]
