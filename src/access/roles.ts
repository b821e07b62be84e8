/**
 * Who may do what over the API. Roles are ordered: each includes everything the one before
 * it may do (SPEC: reader → GET; operator → + trigger, cancel, retry; admin → + changes).
 */
export const ROLES = ['reader', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

export function roleAllows(held: Role, needed: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(needed);
}

/** The identity behind a request, recorded as `requestedBy` and in the audit log. */
export interface Principal {
  name: string;
  role: Role;
}
