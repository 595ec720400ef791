package postgres

// Dialect is the backend's dialect, for the upgrade tests.
var Dialect = dialect
