"""bulkscan: onboard hundreds of databases into Huawei Cloud DSC metadata scans in one run."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
