export {
  DESCRIPTION_VERSION,
  MAX_CANDIDATES,
  MAX_DESCRIPTION_BYTES,
  decodeDescription,
  descriptionFromToken,
  descriptionToToken,
  encodeDescription,
  validateDescription,
  type Description,
} from "./codec.js";
export { MAX_CANDIDATE_LENGTH, formatCandidate, parseCandidate, type Candidate } from "./candidate.js";
export { PeerwireError } from "../errors.js";
