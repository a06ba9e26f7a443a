/* smp-groups: the typed parser for any standard response, chosen by its header */
#pragma once

#include "smp-response.h"

/* Parses rsp with the typed parser for its (group, command id, op), frees the
 * result and returns the parser's code: 0, -EREMOTEIO for an error response,
 * -EBADMSG for a malformed one, -ENOMEM. Commands whose answer is the empty
 * map are checked with smp_groups_parse_empty(). -ENOTSUP when no typed parser
 * exists (user groups, unknown commands, an op the command does not have). */
int smp_groups_parse_any(const struct smp_response *rsp);

/* For commands that answer {} (reset, erase, settings write, ...): 0 when the
 * response is a success map (extra keys are ignored), -EREMOTEIO for an error
 * response, -EBADMSG when the payload is not a map. */
int smp_groups_parse_empty(const struct smp_response *rsp);
