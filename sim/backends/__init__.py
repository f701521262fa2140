"""Physics engines behind one interface (`base.PhysicsBackend`): MuJoCo and PyBullet."""
