"""Platform backends the build actions use: image builders and sandbox runtimes."""
