"""``python -m fluid_history``: serve history alone, configured by ``FLUID_*`` variables."""

from __future__ import annotations

import asyncio

from fluid.service.host import Host
from fluid.service.logs import configure_logging
from fluid.service.settings import ServerSettings


def main() -> None:
    settings = ServerSettings()
    configure_logging(settings.log_level)
    asyncio.run(Host(["history"], settings=settings).run_until_signal())


if __name__ == "__main__":
    main()
