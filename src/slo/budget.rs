//! Budget maths (to be written).
