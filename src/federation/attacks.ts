import { InputError } from '../errors.js';
import { addGaussian } from './noise.js';

/**
 * Hostile agents in simulation (SPEC.md, "The field's methods"): agents 0..F-1 do the honest
 * work but replace every vector they send by attack(x). Their own memory stays honest; the
 * server keeps what it received.
 */
export type Attack = { kind: 'none' } | { kind: 'signflip' } | { kind: 'zero' } | { kind: 'gaussian'; sigma: number };

export function parseAttack(text: string): Attack {
  if (text === 'none' || text === 'signflip' || text === 'zero') return { kind: text };
  const m = /^gaussian:(.+)$/.exec(String(text));
  if (m) {
    const sigma = Number(m[1]);
    if (m[1]!.trim() === '' || !Number.isFinite(sigma) || sigma < 0) throw new InputError(`attack gaussian:SIGMA needs a finite SIGMA >= 0, got '${text}'`);
    return { kind: 'gaussian', sigma };
  }
  throw new InputError(`attack must be signflip, zero or gaussian:SIGMA, got '${String(text)}'`);
}

/** Replaces the message x in place by what a hostile agent sends (gaussian draws from its stream). */
export function applyAttack(attack: Attack, x: Float64Array, rng: Uint32Array): void {
  switch (attack.kind) {
    case 'none':
      return;
    case 'signflip':
      for (let j = 0; j < x.length; j++) x[j] = -x[j]!;
      return;
    case 'zero':
      x.fill(0);
      return;
    case 'gaussian':
      addGaussian(x, attack.sigma, rng);
      return;
  }
}
