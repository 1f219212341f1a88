package member

// For the tests only.

func (ch Chain) Strings() []string { return ch.certStrings() }
