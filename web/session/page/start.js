// Runs the features registered by the parts before this one.
for (const f of features) {
  try {
    f.fn(shim);
  } catch (err) {
    // a feature that fails leaves the page alone
  }
}
