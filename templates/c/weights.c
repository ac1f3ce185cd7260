{= header =}
/* Every constant of the model: folded convolution weights and biases, pixel scaling and the
 * scorer's parameters. Retraining the model changes this file and {= upper =}_THRESHOLD (and the
 * model's hash in each file's header) only. */
#include "{= name =}_weights.h"
{% for c in constants %}
/* {= c.comment =}
 * {= c.layout =} = {= c.dims =} */
const float {= c.symbol =}[{= c.len =}] {= upper =}_ALIGNED = {
{= c.body =}
};
{% endfor -%}
