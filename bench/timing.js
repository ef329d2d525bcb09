// Timing helpers shared by the benches that compare variants on a shared machine (a helper, not a
// bench: bench/run.js runs only *.bench.js).

/** This process's CPU time in ms (the kernels are single-threaded): time slicing on a shared machine inflates wall-clock samples at random, CPU time much less. */
export const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3;
};

/** The median of a list of numbers. */
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
