/** Type declarations for `scripts/gen-proto.mjs` (used by `test/protocol/proto-descriptor.test.ts`). */

/** Directory holding the .proto sources. */
export declare const PROTO_DIR: string;
/** The generated module. */
export declare const OUTPUT_FILE: string;
/** Parses every `.proto` file of `protoDir` and returns the protobufjs JSON descriptor. */
export declare function buildDescriptor(protoDir?: string): { files: string[]; descriptor: object };
/** Renders the TypeScript module text for a descriptor. */
export declare function renderDescriptorModule(files: string[], descriptor: object): string;
/** Generates the module text from the current .proto sources. */
export declare function generateDescriptorModule(): string;
