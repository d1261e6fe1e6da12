"""Bridges to the tools a project already uses: MLflow tracking, MLproject files, DVC."""
