"""Fixtures shared by the hardware tests that put real DDS traffic on loopback."""
import pytest
from cyclonedds.domain import Domain

from hardware.transport.dds import local_only_config, private_domain_id


@pytest.fixture
def domain():
    """A test-unique domain kept on loopback; configured before any participant joins it."""
    domain_id = private_domain_id()
    handle = Domain(domain_id, local_only_config())
    yield domain_id
    del handle
