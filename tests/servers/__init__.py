"""Real test servers as plain classes (no pytest): SeaweedFS S3 (`s3`) and OpenSSH sshd (`ssh`).

The pytest fixtures that start them live in tests/conftest.py; the benchmarks in bench/
import these classes directly.
"""
