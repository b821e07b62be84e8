/** Time as the domain sees it: injectable so lease and schedule logic can be tested without waiting. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
