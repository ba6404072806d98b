//! Rule generation (to be written).
