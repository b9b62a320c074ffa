//! Loopback HTTP backends that play the scenario's members (to be written).
