// A SCIMMY server (scimmy + scimmy-routers on express 4) over an in-memory
// store, for orgsync's tests. SCIMMY parses, validates, filters, pages and
// applies PATCH operations; this file only keeps the resources.
//
//     node server.mjs PORT TOKEN [soft-delete] [unique-groups]
//
// userName is unique, as SCIM says. With `soft-delete`, a deleted User stays
// listed with `active: false` (204 all the same), as django-scim2-server and
// several SaaS targets do. With `unique-groups`, a second Group with a taken
// displayName is refused (409), as many SaaS targets do.
//
// Requests are logged to stderr, one line each: "GET /scim/v2/Users HTTP/1.1" 200
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";
import {randomUUID} from "node:crypto";

const [port, token, ...options] = process.argv.slice(2);
const softDelete = options.includes("soft-delete");

// One store per resource type; `unique` is the attribute no two may share (if any).
function declare(type, unique) {
    const store = new Map();
    const missing = (id) => new SCIMMY.Types.Error(404, null, `Resource ${id} not found`);
    SCIMMY.Resources.declare(type)
        .ingress((resource, instance) => {
            const id = resource.id ?? randomUUID();
            if (resource.id && !store.has(id)) throw missing(id);
            const value = String(instance[unique] ?? "").toLowerCase();
            for (const other of unique ? store.values() : []) {
                if (other.id !== id && String(other[unique] ?? "").toLowerCase() === value)
                    throw new SCIMMY.Types.Error(409, "uniqueness", `${unique} ${instance[unique]} is already taken`);
            }
            const now = new Date().toISOString();
            const record = {...JSON.parse(JSON.stringify(instance)), id, meta: {created: store.get(id)?.meta?.created ?? now, lastModified: now}};
            store.set(id, record);
            return record;
        })
        .egress((resource) => {
            if (resource.id) {
                if (!store.has(resource.id)) throw missing(resource.id);
                return store.get(resource.id);
            }
            const all = [...store.values()];
            return resource.filter ? resource.filter.match(all) : all;
        })
        .degress((resource) => {
            if (softDelete && type === SCIMMY.Resources.User && store.has(resource.id)) {
                store.get(resource.id).active = false;
                return;
            }
            if (!store.delete(resource.id)) throw missing(resource.id);
        });
}

SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false);
declare(SCIMMY.Resources.User, "userName");
declare(SCIMMY.Resources.Group, options.includes("unique-groups") ? "displayName" : null);

const app = express();
app.use((req, res, next) => {
    res.on("finish", () => console.error(`"${req.method} ${req.originalUrl} HTTP/1.1" ${res.statusCode}`));
    next();
});
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    handler: (req) => {
        if (req.header("Authorization") !== `Bearer ${token}`) throw new Error("Authorization not detected!");
        return "orgsync";
    },
}));
app.listen(Number(port), "127.0.0.1");
