// Package closer collects the Close functions of the clients a function
// builds, so a failed build releases what it had opened and a finished one
// releases everything, newest first.
package closer

// Stack holds Close functions; the zero value is ready to use.
type Stack []func()

// Add pushes a Close function. For closers that return an error (which at
// shutdown nobody can act on) wrap them: s.Add(func() { c.Close() }).
func (s *Stack) Add(f func()) { *s = append(*s, f) }

// Close calls every function, newest first, and empties the stack.
func (s *Stack) Close() {
	for i := len(*s) - 1; i >= 0; i-- {
		(*s)[i]()
	}
	*s = nil
}

// Build runs build with a fresh Stack and returns what it built with the
// Stack's Close; if build fails, what it had opened is closed at once. It is
// the shape of every function's Build.
func Build[T any](build func(c *Stack) (T, error)) (T, func(), error) {
	var c Stack
	v, err := build(&c)
	if err != nil {
		c.Close()
		var zero T
		return zero, nil, err
	}
	return v, c.Close, nil
}
