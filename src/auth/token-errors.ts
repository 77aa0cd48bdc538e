/** A Bearer token that does not verify (its own module, so that the authenticators load without jose). */
export class InvalidTokenError extends Error {
  constructor(message: string, readonly expired = false) {
    super(message);
    this.name = 'InvalidTokenError';
  }
}
