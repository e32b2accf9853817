"""SBIF inside other frameworks' pipelines: `sbif.integrations.ray` maps Ray Data datasets through a policy.

Each integration imports its framework only when it is imported itself (`import sbif` never loads Ray), and is
installed as an extra (`pip install 'sbif[ray]'`)."""
