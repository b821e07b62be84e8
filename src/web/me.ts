/** Who is signed in, for hiding the buttons a role may not use (the API refuses them anyway). */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { roleAllows, type Role, type Whoami } from './types';

export const MeContext = createContext<Whoami>({ name: 'anonymous', role: 'reader', tokensRequired: true });

export const useMe = (): Whoami => useContext(MeContext);

/** Whether the signed-in principal may use a route that needs `role`. */
export function useCan(role: Role): boolean {
  return roleAllows(useMe().role, role);
}
