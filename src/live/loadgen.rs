//! Open-loop load generator (to be written).
