import Testing  // placeholder: the first real test file replaces this
