package chaos

// loadScenarios bound memory under load; they run with --load (full size)
// and, scaled down, with --quick.
var loadScenarios = []scenario{}
