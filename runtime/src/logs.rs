//! Container log files in the CRI format (owned by the cgroups+logs work; placeholder).
