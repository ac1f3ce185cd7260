{= header =}
/* Declarations of the constants in {= name =}_weights.c (internal to the library). */
#ifndef {= upper =}_WEIGHTS_H
#define {= upper =}_WEIGHTS_H

#if defined(__GNUC__) || defined(__clang__)
#define {= upper =}_ALIGNED __attribute__((aligned({= alignment =})))
#else
#define {= upper =}_ALIGNED
#endif

{% for c in constants -%}
extern const float {= c.symbol =}[{= c.len =}];
{% endfor %}
#endif /* {= upper =}_WEIGHTS_H */
