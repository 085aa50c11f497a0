; Function and method definitions: @definition.function with its @name.

(function_definition name: (identifier) @name) @definition.function
