"""One local Ray for the tests that need it (start-up takes seconds on 2 cores): sweeps and remote collectors join
it instead of starting their own. Tests using it carry `xdist_group("ray")`, so they share one xdist worker."""
import pytest


@pytest.fixture(scope="session")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
